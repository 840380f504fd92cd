"""Inside an O-RAN SC Near-RT RIC: RMR messaging, subscriptions and the cells the xApp watches."""
