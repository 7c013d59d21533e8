"""The API's routes, one module per resource: decisions, batches, models, health."""
