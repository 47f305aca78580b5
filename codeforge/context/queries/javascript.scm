; JavaScript (and JSX) tags for CodeForge's repo map. Capture names: see python.scm.

(function_declaration
  name: (identifier) @name.definition.function) @definition.function

(generator_function_declaration
  name: (identifier) @name.definition.function) @definition.function

(class_declaration
  name: (identifier) @name.definition.class) @definition.class

(method_definition
  name: [(property_identifier) (private_property_identifier)] @name.definition.method) @definition.method

(lexical_declaration
  (variable_declarator
    name: (identifier) @name.definition.function
    value: [(arrow_function) (function) (class)])) @definition.function

(variable_declaration
  (variable_declarator
    name: (identifier) @name.definition.function
    value: [(arrow_function) (function) (class)])) @definition.function

(program
  (lexical_declaration
    (variable_declarator
      name: (identifier) @name.definition.constant
      value: [(object) (array) (call_expression) (string) (number) (new_expression)])) @definition.constant)

(program
  (export_statement
    declaration: (lexical_declaration
      (variable_declarator
        name: (identifier) @name.definition.constant
        value: [(object) (array) (call_expression) (string) (number) (new_expression)])) @definition.constant))

(assignment_expression
  left: (member_expression property: (property_identifier) @name.definition.function)
  right: [(arrow_function) (function)]) @definition.function

(call_expression
  function: (identifier) @name.reference.call)

(call_expression
  function: (member_expression property: (property_identifier) @name.reference.call))

(new_expression
  constructor: (identifier) @name.reference.class)

(class_heritage (identifier) @name.reference.class)

(jsx_opening_element name: (identifier) @name.reference.component)
(jsx_self_closing_element name: (identifier) @name.reference.component)

(import_specifier name: (identifier) @name.reference.import)

(import_statement source: (string (string_fragment) @import))
(export_statement source: (string (string_fragment) @import))

(call_expression
  function: (identifier) @_require
  arguments: (arguments (string (string_fragment) @import))
  (#eq? @_require "require"))
