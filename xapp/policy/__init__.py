"""A1 policies on the Near-RT side: the RANomaly policy type, storage, resolution per cell, A1-P over HTTP and RMR."""
