"""The local TEE gateway."""
