"""In-memory adapters: real implementations of every port, enforcing the same invariants."""
