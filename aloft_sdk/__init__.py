"""aloft_sdk: a small client for Aloft's (and WebODM's) REST API.

    from aloft_sdk import Client, upload_images
    client = Client("http://localhost:8000").login("admin", "admin")
    project, _ = client.find_or_create_project("Demo")
    task, state = upload_images(client, project["id"], ["./images"], name="Flight 1")
    client.wait(project["id"], task["id"])
    client.download(project["id"], task["id"], "orthophoto.tif", "out/")
    state.remove()
"""
from .client import COMPLETED, FAILED, CANCELED, QUEUED, RUNNING, Client, status_name
from .errors import AloftError, ApiError, AuthError, NotFound, TaskFailed, Unreachable, UsageError
from .uploads import Progress, UploadState, collect_files, upload_images

__all__ = ["Client", "upload_images", "collect_files", "UploadState", "Progress", "status_name",
           "AloftError", "ApiError", "AuthError", "NotFound", "TaskFailed", "Unreachable", "UsageError",
           "QUEUED", "RUNNING", "FAILED", "COMPLETED", "CANCELED"]
__version__ = "0.1.0"
