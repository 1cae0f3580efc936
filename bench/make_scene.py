"""Writes a synthetic NAIP-like scene for bench/big_scene.sh: W x H pixels of 4 uint8 bands
(R, G, B, NIR), tiled 512 x 512, deflate, in NAD83 / UTM zone 18N at 1 m, with a NoData value
of 0 and a 300-pixel no-data margin on the left, written block row by block row so that the
writer never holds the scene.   usage: make_scene.py OUT.tif WIDTH HEIGHT"""
import sys

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()
out, W, H = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ds = gdal.GetDriverByName("GTiff").Create(
    out, W, H, 4, gdal.GDT_Byte,
    ["TILED=YES", "BLOCKXSIZE=512", "BLOCKYSIZE=512", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"])
srs = osr.SpatialReference()
srs.ImportFromEPSG(26918)
ds.SetProjection(srs.ExportToWkt())
ds.SetGeoTransform((300000.0, 1.0, 0.0, 4300000.0, 0.0, -1.0))
x = np.arange(W)
for y0 in range(0, H, 512):
    rows = min(512, H - y0)
    yy = np.arange(y0, y0 + rows)[:, None]
    field = ((x[None, :] // 97 + yy // 89) % 5).astype(np.int32)   # fields of 5 kinds
    texture = ((x[None, :] * 7 + yy * 13) % 23).astype(np.int32)
    for b in range(4):
        v = np.clip(30 + field * (20 + 9 * b) + texture, 1, 255).astype(np.uint8)
        v[:, :300] = 0
        ds.GetRasterBand(b + 1).WriteArray(v, 0, y0)
for b in range(4):
    ds.GetRasterBand(b + 1).SetNoDataValue(0)
ds = None
