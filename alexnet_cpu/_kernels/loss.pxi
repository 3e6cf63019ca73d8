# loss kernel bindings
