# lrn kernel bindings
