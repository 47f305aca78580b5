; C# tags for CodeForge's repo map. Capture names: see python.scm.

(class_declaration
  name: (identifier) @name.definition.class) @definition.class

(struct_declaration
  name: (identifier) @name.definition.struct) @definition.struct

(interface_declaration
  name: (identifier) @name.definition.interface) @definition.interface

(enum_declaration
  name: (identifier) @name.definition.enum) @definition.enum

(record_declaration
  name: (identifier) @name.definition.class) @definition.class

(method_declaration
  name: (identifier) @name.definition.method) @definition.method

(constructor_declaration
  name: (identifier) @name.definition.method) @definition.method

(property_declaration
  name: (identifier) @name.definition.property) @definition.property

(namespace_declaration) @scope

(invocation_expression
  function: (identifier) @name.reference.call)

(invocation_expression
  function: (member_access_expression name: (identifier) @name.reference.call))

(object_creation_expression
  type: (identifier) @name.reference.class)

(base_list (identifier) @name.reference.class)

(variable_declaration type: (identifier) @name.reference.type)

(parameter type: (identifier) @name.reference.type)

(generic_name (identifier) @name.reference.type)

(using_directive (qualified_name) @import)
(using_directive (identifier) @import)
