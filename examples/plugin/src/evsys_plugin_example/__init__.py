"""An example evsys plugin: registers the ``constant_lr_toy`` algorithm (see ``hooks``)."""
