; Rust tags for CodeForge's repo map. Capture names: see python.scm.

(function_item
  name: (identifier) @name.definition.function) @definition.function

(function_signature_item
  name: (identifier) @name.definition.function) @definition.function

(struct_item
  name: (type_identifier) @name.definition.struct) @definition.struct

(enum_item
  name: (type_identifier) @name.definition.enum) @definition.enum

(union_item
  name: (type_identifier) @name.definition.union) @definition.union

(trait_item
  name: (type_identifier) @name.definition.interface) @definition.interface

(type_item
  name: (type_identifier) @name.definition.type) @definition.type

(mod_item
  name: (identifier) @name.definition.module) @definition.module

(macro_definition
  name: (identifier) @name.definition.macro) @definition.macro

(const_item
  name: (identifier) @name.definition.constant) @definition.constant

(static_item
  name: (identifier) @name.definition.constant) @definition.constant

; impl blocks frame their methods in the map.
(impl_item) @scope

(impl_item
  trait: (type_identifier) @name.reference.implementation)

(call_expression
  function: (identifier) @name.reference.call)

(call_expression
  function: (field_expression field: (field_identifier) @name.reference.call))

(call_expression
  function: (scoped_identifier name: (identifier) @name.reference.call))

(macro_invocation
  macro: (identifier) @name.reference.macro)

(type_identifier) @name.reference.type

(use_declaration argument: (_) @import)
