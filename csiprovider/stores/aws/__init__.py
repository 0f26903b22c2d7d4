"""AWS: the `provider: aws` dialect (ASCP's schema), Secrets Manager, SSM and KMS."""
