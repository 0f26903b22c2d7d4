"""`backend: sops`: SOPS-encrypted documents committed in the SPC, decrypted with key
material the pod brings (its nodePublishSecretRef)."""
