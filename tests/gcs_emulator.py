"""Runs gcp-storage-emulator (`python -m tests.gcs_emulator PORT BUCKET`, in memory) with the
one header of real GCS that TensorStore needs and the emulator (0.x) does not send.

Real GCS answers every object read with its generation (`x-goog-generation`); TensorStore's
OCDBT format reads its manifest back with it, and without it a save of many arrays fails with
"Malformed StorageGeneration". This launcher adds that header to the emulator's download
handler and changes nothing else. The emulator still ignores `ifGenerationMatch` (conditional
writes), which OCDBT uses to detect concurrent manifest writers: one writing process per
checkpoint, as in these tests, does not need it.
"""
import sys
import threading

from gcp_storage_emulator.handlers import objects

_download = objects.download


def _download_with_generation(request, response, storage, *args, **kwargs):
  try:
    obj = storage.get_file_obj(request.params['bucket_name'], request.params['object_id'])
    response['x-goog-generation'] = str(obj['generation'])
  except Exception:  # pylint: disable=broad-except
    pass  # not found: the emulator's handler answers 404
  return _download(request, response, storage, *args, **kwargs)


objects.download = _download_with_generation  # before server.py builds its routes from it

if __name__ == '__main__':
  from gcp_storage_emulator.server import create_server  # pylint: disable=g-import-not-at-top
  create_server('127.0.0.1', int(sys.argv[1]), in_memory=True,
                default_bucket=sys.argv[2]).start()
  threading.Event().wait()
