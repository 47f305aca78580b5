; TSX tags (TypeScript with JSX) for CodeForge's repo map. Capture names: see python.scm.

(function_declaration
  name: (identifier) @name.definition.function) @definition.function

(generator_function_declaration
  name: (identifier) @name.definition.function) @definition.function

(function_signature
  name: (identifier) @name.definition.function) @definition.function

(class_declaration
  name: (type_identifier) @name.definition.class) @definition.class

(abstract_class_declaration
  name: (type_identifier) @name.definition.class) @definition.class

(interface_declaration
  name: (type_identifier) @name.definition.interface) @definition.interface

(type_alias_declaration
  name: (type_identifier) @name.definition.type) @definition.type

(enum_declaration
  name: (identifier) @name.definition.enum) @definition.enum

(internal_module
  name: (identifier) @name.definition.module) @definition.module

(method_definition
  name: [(property_identifier) (private_property_identifier)] @name.definition.method) @definition.method

(method_signature
  name: (property_identifier) @name.definition.method) @definition.method

(abstract_method_signature
  name: (property_identifier) @name.definition.method) @definition.method

(lexical_declaration
  (variable_declarator
    name: (identifier) @name.definition.function
    value: [(arrow_function) (function) (class)])) @definition.function

(program
  (lexical_declaration
    (variable_declarator
      name: (identifier) @name.definition.constant
      value: [(object) (array) (call_expression) (string) (number) (new_expression) (as_expression)])) @definition.constant)

(program
  (export_statement
    declaration: (lexical_declaration
      (variable_declarator
        name: (identifier) @name.definition.constant
        value: [(object) (array) (call_expression) (string) (number) (new_expression) (as_expression)])) @definition.constant))

(call_expression
  function: (identifier) @name.reference.call)

(call_expression
  function: (member_expression property: (property_identifier) @name.reference.call))

(new_expression
  constructor: (identifier) @name.reference.class)

(type_identifier) @name.reference.type

(extends_clause value: (identifier) @name.reference.class)

(import_specifier name: (identifier) @name.reference.import)

(import_statement source: (string (string_fragment) @import))
(export_statement source: (string (string_fragment) @import))

(call_expression
  function: (identifier) @_require
  arguments: (arguments (string (string_fragment) @import))
  (#eq? @_require "require"))

(jsx_opening_element name: (identifier) @name.reference.component)
(jsx_self_closing_element name: (identifier) @name.reference.component)
