"""Neural-network building blocks written for this project (no timm/torchvision, no HF model classes)."""
