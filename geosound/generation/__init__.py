"""Generation: SounDiT sampling, the GeoKD knowledge base, and generated pictures on the map.

Sound → image (METHODS.md §2). The model itself lives in :mod:`geosound.models.soundit`
and its latent space in :mod:`geosound.models.autoencoder`; this package holds what happens
at inference: classifier-free guided DDIM sampling, retrieval-augmented initialisation from
the knowledge base, and placing the result where a recording was made.
"""
