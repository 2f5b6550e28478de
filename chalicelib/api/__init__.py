"""HTTP routes: one blueprint per resource. Views parse, check, call the store, serialize."""
