"""Click commands only: parse arguments, call the core, render its result, return an exit code."""
