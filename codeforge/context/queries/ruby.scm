; Ruby tags for CodeForge's repo map. Capture names: see python.scm.

(method
  name: (_) @name.definition.method) @definition.method

(singleton_method
  name: (_) @name.definition.method) @definition.method

(class
  name: [(constant) (scope_resolution name: (_))] @name.definition.class) @definition.class

(module
  name: [(constant) (scope_resolution name: (_))] @name.definition.module) @definition.module

(program
  (assignment left: (constant) @name.definition.constant) @definition.constant)

(call
  method: (identifier) @name.reference.call)

(constant) @name.reference.constant

(call
  method: (identifier) @_require
  arguments: (argument_list (string (string_content) @import))
  (#match? @_require "^require(_relative)?$"))
