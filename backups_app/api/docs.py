"""The API docs page (/api/system/docs) with Swagger UI from our own static files, not a CDN.

django-ninja renders its local-assets template only when "ninja" is in INSTALLED_APPS, which we
avoid (backupsite/settings.py: it would import the API stack into every management command).
Otherwise it renders ``template_cdn`` as a file: we point that at the local-assets template. Its
``{% static %}`` files and its included favicons come from ninja's folders, listed in
STATICFILES_DIRS and TEMPLATES DIRS."""

from ninja.openapi import docs


class LocalSwagger(docs.Swagger):
    template_cdn = str(docs.ABS_TPL_PATH / "swagger.html")
