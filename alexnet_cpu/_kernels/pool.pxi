# pool kernel bindings
