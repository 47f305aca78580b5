; C++ tags for CodeForge's repo map. Capture names: see python.scm.

(function_definition
  declarator: (function_declarator
    declarator: [(identifier) (field_identifier)] @name.definition.function)) @definition.function

(function_definition
  declarator: (function_declarator
    declarator: (qualified_identifier name: (identifier) @name.definition.method))) @definition.method

(function_definition
  declarator: (pointer_declarator
    declarator: (function_declarator
      declarator: [(identifier) (field_identifier)] @name.definition.function))) @definition.function

(function_definition
  declarator: (reference_declarator
    (function_declarator
      declarator: [(identifier) (field_identifier)] @name.definition.function))) @definition.function

(declaration
  declarator: (function_declarator
    declarator: (identifier) @name.definition.function)) @definition.function

(field_declaration
  declarator: (function_declarator
    declarator: (field_identifier) @name.definition.method)) @definition.method

(class_specifier
  name: (type_identifier) @name.definition.class
  body: (_)) @definition.class

(struct_specifier
  name: (type_identifier) @name.definition.struct
  body: (_)) @definition.struct

(union_specifier
  name: (type_identifier) @name.definition.union
  body: (_)) @definition.union

(enum_specifier
  name: (type_identifier) @name.definition.enum
  body: (_)) @definition.enum

(type_definition
  declarator: (type_identifier) @name.definition.type) @definition.type

(alias_declaration
  name: (type_identifier) @name.definition.type) @definition.type

(namespace_definition) @scope

(preproc_function_def
  name: (identifier) @name.definition.macro) @definition.macro

(preproc_def
  name: (identifier) @name.definition.macro) @definition.macro

(call_expression
  function: (identifier) @name.reference.call)

(call_expression
  function: (field_expression field: (field_identifier) @name.reference.call))

(call_expression
  function: (qualified_identifier name: (identifier) @name.reference.call))

(type_identifier) @name.reference.type

(preproc_include path: (string_literal) @import)
(preproc_include path: (system_lib_string) @import)
