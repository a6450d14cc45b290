"""evsys-mlflow: ``evsys mlflow export`` sends a recorded experiment to an MLflow tracking server, exactly once."""
