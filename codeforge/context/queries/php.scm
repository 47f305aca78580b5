; PHP tags for CodeForge's repo map. Capture names: see python.scm.

(class_declaration
  name: (name) @name.definition.class) @definition.class

(interface_declaration
  name: (name) @name.definition.interface) @definition.interface

(trait_declaration
  name: (name) @name.definition.interface) @definition.interface

(enum_declaration
  name: (name) @name.definition.enum) @definition.enum

(function_definition
  name: (name) @name.definition.function) @definition.function

(method_declaration
  name: (name) @name.definition.method) @definition.method

(namespace_definition) @scope

(function_call_expression
  function: [(name) (qualified_name (name))] @name.reference.call)

(member_call_expression
  name: (name) @name.reference.call)

(scoped_call_expression
  name: (name) @name.reference.call)

(object_creation_expression [(name) (qualified_name (name))] @name.reference.class)

(base_clause [(name) (qualified_name (name))] @name.reference.class)

(class_interface_clause [(name) (qualified_name (name))] @name.reference.interface)

(named_type [(name) (qualified_name (name))] @name.reference.type)

(namespace_use_clause (qualified_name) @import)

(require_once_expression (string (string_value) @import))
(require_expression (string (string_value) @import))
(include_expression (string (string_value) @import))
(include_once_expression (string (string_value) @import))
