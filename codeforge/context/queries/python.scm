; Python tags for CodeForge's repo map.
; Captures: @definition.<kind> is the defining node (its span is the symbol's scope),
; @name.definition.<kind> its name; @name.reference.<kind> a use of a name;
; @import a module a file imports; @scope a block whose header frames the symbols in it.

(class_definition
  name: (identifier) @name.definition.class) @definition.class

(function_definition
  name: (identifier) @name.definition.function) @definition.function

(decorated_definition
  definition: (class_definition name: (identifier) @name.definition.class)) @definition.class

(decorated_definition
  definition: (function_definition name: (identifier) @name.definition.function)) @definition.function

; Module-level constants and aliases: NAME = ...
(module
  (expression_statement
    (assignment left: (identifier) @name.definition.constant) @definition.constant))

(call
  function: (identifier) @name.reference.call)

(call
  function: (attribute attribute: (identifier) @name.reference.call))

(class_definition
  superclasses: (argument_list [(identifier) @name.reference.class
                                (attribute attribute: (identifier) @name.reference.class)]))

(type (identifier) @name.reference.type)

(decorator (identifier) @name.reference.call)

(import_from_statement
  name: (dotted_name (identifier) @name.reference.import))

(import_from_statement
  name: (aliased_import name: (dotted_name (identifier) @name.reference.import)))

(import_statement name: (dotted_name) @import)
(import_statement name: (aliased_import name: (dotted_name) @import))
(import_from_statement module_name: (dotted_name) @import)
(import_from_statement module_name: (relative_import) @import)
