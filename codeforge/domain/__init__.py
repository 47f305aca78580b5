"""The pure model: entities, value objects, rules, events and errors. No I/O, no framework."""
