"""Map rasters: the orthophoto, DSM and DTM of a completed task (WebODM's `app/api/tiler.py`,
`app/cogeo.py`, `app/raster_utils.py`).

Every module here imports rasterio, numpy or rio-tiler, so nothing outside a raster route or
the completion step may import this package at module level (cold start, test_cold_start).
"""
