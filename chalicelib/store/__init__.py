"""DynamoDB access: one small repository module per table."""
