; Go tags for CodeForge's repo map. Capture names: see python.scm.

(function_declaration
  name: (identifier) @name.definition.function) @definition.function

(method_declaration
  name: (field_identifier) @name.definition.method) @definition.method

(type_spec
  name: (type_identifier) @name.definition.type) @definition.type

(method_spec
  name: (field_identifier) @name.definition.method) @definition.method

(source_file
  (const_declaration
    (const_spec name: (identifier) @name.definition.constant) @definition.constant))

(source_file
  (var_declaration
    (var_spec name: (identifier) @name.definition.variable) @definition.variable))

(call_expression
  function: (identifier) @name.reference.call)

(call_expression
  function: (selector_expression field: (field_identifier) @name.reference.call))

(selector_expression field: (field_identifier) @name.reference.field)

(qualified_type name: (type_identifier) @name.reference.type)

(type_identifier) @name.reference.type

(composite_literal type: (type_identifier) @name.reference.type)

(import_spec path: (interpreted_string_literal) @import)
