"""Jobs: identity (ids, container names, labels), local records and locks, what runs where, stop and logs."""
