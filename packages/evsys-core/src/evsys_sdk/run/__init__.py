"""One arm's run: the run lifecycle (runner), progress, step metrics, callbacks."""
