"""Response transformers by media type (`output_json` for application/json)."""
