"""GDAL writes the GIS test's fixtures and reads aec's results (tests/gis/run.sh).

  nodata TILE.tif VALUE          rows 100-149, columns 200-299: every band VALUE, NoData tag VALUE
  mask TILE.tif                  an internal per-dataset mask, 0 at rows 300-349, columns 50-149
  palette SRC.tif DST.tif [ND]   labels as a paletted file (a colour table), NoData tag ND
  srs TILE.tif EPSG              the CRS replaced (the pixels stay)
  shift TILE.tif DX              the origin moved DX metres east
  expect PRED.tif NAIP.tif [VALUE]
                                 the class map is 15 exactly where every band of NAIP is VALUE
                                 or its internal mask is 0
  probs PRED.tif F32.tif U8.tif ID...
                                 the class map is the label ID of the largest float32
                                 probability; probabilities sum to 1; the uint8 file is the
                                 float32 one times 254, rounded
"""
import sys

import numpy as np
from osgeo import gdal

gdal.UseExceptions()


def rewrite(path, arrays, nodata=None, mask=None, ct=None):
    """path rewritten by GDAL (tiled, deflate) with the given band arrays, keeping its grid."""
    src = gdal.Open(path)
    gt, srs, dtype = src.GetGeoTransform(), src.GetProjection(), src.GetRasterBand(1).DataType
    src = None
    gdal.SetConfigOption("GDAL_TIFF_INTERNAL_MASK", "YES")
    tmp = path + ".new.tif"
    h, w = arrays[0].shape
    ds = gdal.GetDriverByName("GTiff").Create(tmp, w, h, len(arrays), dtype,
                                               ["TILED=YES", "COMPRESS=DEFLATE"])
    ds.SetGeoTransform(gt)
    ds.SetProjection(srs)
    for i, a in enumerate(arrays):
        b = ds.GetRasterBand(i + 1)
        b.WriteArray(a)
        if nodata is not None:
            b.SetNoDataValue(nodata)
        if ct is not None:
            b.SetColorTable(ct)
    if mask is not None:
        ds.CreateMaskBand(gdal.GMF_PER_DATASET)
        ds.GetRasterBand(1).GetMaskBand().WriteArray(mask)
    ds = None
    import os
    os.replace(tmp, path)


def bands(path):
    ds = gdal.Open(path)
    return [ds.GetRasterBand(i + 1).ReadAsArray() for i in range(ds.RasterCount)]


def nodata_block(path, value):
    arrays = bands(path)
    for a in arrays:
        a[100:150, 200:300] = value
    rewrite(path, arrays, nodata=float(value))


def mask_block(path):
    arrays = bands(path)
    mask = np.full(arrays[0].shape, 255, np.uint8)
    mask[300:350, 50:150] = 0
    rewrite(path, arrays, mask=mask)


def palette(src, dst, nodata=None):
    ds = gdal.Open(src)
    labels = ds.GetRasterBand(1).ReadAsArray().astype(np.uint8)
    out = gdal.GetDriverByName("GTiff").Create(dst, ds.RasterXSize, ds.RasterYSize, 1,
                                                gdal.GDT_Byte, ["COMPRESS=DEFLATE"])
    out.SetGeoTransform(ds.GetGeoTransform())
    out.SetProjection(ds.GetProjection())
    ct = gdal.ColorTable()
    for v in range(256):   # colours that are not the indices, so reading colours would show
        ct.SetColorEntry(v, (255 - v, (v * 37) % 256, (v * 91) % 256, 255))
    b = out.GetRasterBand(1)
    b.SetColorTable(ct)
    if nodata is not None:
        b.SetNoDataValue(nodata)
    b.WriteArray(labels)
    out = None
    check = gdal.Open(dst)
    assert check.GetRasterBand(1).GetColorInterpretation() == gdal.GCI_PaletteIndex, "GDAL wrote no palette"


def set_srs(path, epsg):
    ds = gdal.Open(path, gdal.GA_Update)
    from osgeo import osr
    s = osr.SpatialReference()
    s.ImportFromEPSG(epsg)
    ds.SetProjection(s.ExportToWkt())
    ds = None


def shift(path, dx):
    ds = gdal.Open(path, gdal.GA_Update)
    gt = list(ds.GetGeoTransform())
    gt[0] += dx
    ds.SetGeoTransform(gt)
    ds = None


def expect(pred, naip, value=None):
    p = gdal.Open(pred).ReadAsArray()
    ds = gdal.Open(naip)   # kept: a band outlives its dataset only in C
    band = ds.GetRasterBand(1)
    want = np.zeros(p.shape, bool)
    if value is not None:
        want |= np.all(np.stack(bands(naip)) == value, axis=0)
    if band.GetMaskFlags() & gdal.GMF_PER_DATASET:
        want |= band.GetMaskBand().ReadAsArray() == 0
    assert want.any(), f"{naip} has no pixel without data"
    bad = int(np.sum((p == 15) != want))
    assert bad == 0, f"{pred}: {bad} pixels are 15 where there is data or not 15 where there is none"
    print(f"{int(want.sum())} no-data pixels, all 15")


def probs(pred, f32, u8, ids):
    p = gdal.Open(pred).ReadAsArray()
    f = np.stack(bands(f32))
    b = np.stack(bands(u8)).astype(np.float64)
    valid = p != 15
    assert valid.any(), "every pixel is no data"
    assert np.all(np.isnan(f[:, ~valid])), "float32 probabilities are not NaN at no data"
    assert np.all(b[:, ~valid] == 255), "uint8 probabilities are not 255 at no data"
    fv, bv = f[:, valid], b[:, valid]
    assert np.all(np.abs(fv.sum(axis=0) - 1) < 1e-4), "probabilities do not sum to 1"
    best = np.array(ids)[np.argmax(fv, axis=0)]
    assert np.array_equal(best, p[valid]), "the class map is not the most probable class"
    assert np.all(np.abs(bv - np.round(fv * 254)) <= 1), "uint8 is not the probability x 254"
    ds = gdal.Open(u8)
    scale = ds.GetRasterBand(1).GetScale()
    assert abs(scale - 1 / 254) < 1e-9, f"uint8 scale {scale}"
    print(f"{int(valid.sum())} pixels: argmax, sums and uint8 scaling agree")


if __name__ == "__main__":
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "nodata":
        nodata_block(a[0], int(a[1]))
    elif cmd == "mask":
        mask_block(a[0])
    elif cmd == "palette":
        palette(a[0], a[1], float(a[2]) if len(a) > 2 else None)
    elif cmd == "srs":
        set_srs(a[0], int(a[1]))
    elif cmd == "shift":
        shift(a[0], float(a[1]))
    elif cmd == "expect":
        expect(a[0], a[1], int(a[2]) if len(a) > 2 else None)
    elif cmd == "probs":
        probs(a[0], a[1], a[2], [int(v) for v in a[3:]])
    else:
        sys.exit(f"fixtures.py: unknown command '{cmd}'")
