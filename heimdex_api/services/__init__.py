"""What the routes do: small functions over the catalog, the derived tree and Dagster."""
