"""Secret stores: the process environment and a 0600 JSON file under the data dir."""
