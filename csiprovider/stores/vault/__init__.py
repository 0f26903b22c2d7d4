"""Vault/OpenBao: the `provider: vault` dialect (vault-csi-provider's schema) and backend."""
