"""evsys-local."""
