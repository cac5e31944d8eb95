"""The HTTP answer to a download, shared by the admin and the API: a redirect to a presigned S3
URL for one artifact when that is configured, otherwise the stored bytes streamed through the app
(the whole set as one tar, or one file). Audited either way."""

from django.http import HttpResponseRedirect, StreamingHttpResponse

from backups_app.services import audit, backups


def download_response(request, backup_id, artifact=None, user=None):
    url = backups.download_url(backup_id, artifact) if artifact else None
    if url is None:
        iterator, length, filename = backups.download(backup_id, artifact)
    audit.record("backup.download", user=user, request=request, target=backup_id,
                 details={"artifact": artifact, "presigned": url is not None})
    if url:
        return HttpResponseRedirect(url)
    response = StreamingHttpResponse(iterator,
                                     content_type="application/octet-stream" if artifact else "application/x-tar")
    response["Content-Length"] = str(length)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
