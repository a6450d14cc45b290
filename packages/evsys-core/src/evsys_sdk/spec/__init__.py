"""What an experiment is: the config models, params, data shapes, protocols, results; imports only ``base``."""
