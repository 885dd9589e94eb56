"""gatewayapi: TODO describe."""
