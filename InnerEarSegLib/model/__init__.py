"""The networks (``network``) and the model card that names, checks and loads them (``model_card``)."""
