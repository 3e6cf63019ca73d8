# eltwise kernel bindings
