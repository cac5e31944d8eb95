"""The HTTP answer to a download, shared by the admin and the API: a redirect to a presigned S3
URL for one artifact when that is configured, otherwise the stored bytes streamed through the app
(the whole set as one tar, or one file). The service audits it either way."""

from django.http import HttpResponseRedirect, StreamingHttpResponse

from backups_app.services import backups


def download_response(request, backup_id, artifact=None, user=None):
    url = backups.download_url(backup_id, artifact, user=user, request=request) if artifact else None
    if url:
        return HttpResponseRedirect(url)
    iterator, length, filename = backups.download(backup_id, artifact, user=user, request=request)
    response = StreamingHttpResponse(iterator,
                                     content_type="application/octet-stream" if artifact else "application/x-tar")
    response["Content-Length"] = str(length)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
