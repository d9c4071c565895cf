"""Studies of one model on one task: how good it can get (the search for its best configuration)."""
