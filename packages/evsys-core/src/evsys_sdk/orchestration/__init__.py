"""An experiment: its arms (each a picklable task run in a worker), seeds and stages, and the executors."""
