# sgd kernel bindings
