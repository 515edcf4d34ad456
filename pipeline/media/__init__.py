"""Reading pixels: still images and video (files, network streams, capture devices), for live and offline use."""
