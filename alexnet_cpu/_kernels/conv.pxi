# conv kernel bindings
