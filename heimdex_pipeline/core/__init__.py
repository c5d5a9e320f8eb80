"""What every part of the pipeline reads: its settings (`HEIMDEX_*`) and its JSON logs."""
