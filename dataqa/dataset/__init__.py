"""The dataset layer: sources and layouts, image decoding, the manifest table,
the tensor file, class counts and balance. Imports only foundations."""
