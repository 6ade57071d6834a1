"""Development peers that speak the Beach wire protocol: a Road-compatible server and a host."""
