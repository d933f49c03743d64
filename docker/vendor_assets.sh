#!/bin/sh
# Copies the front-end packages npm installed into the static tree: Bootstrap for the staff portal, the NHS.UK design
# system for the public pages. NHS.UK's stylesheet loads the Frutiger font from NHS.UK's own CDN and names its images
# from the site root: the font is dropped (the design system falls back to Arial) and the images are named beside the
# stylesheet, so the pages fetch nothing from anywhere but this server. Used by `make install` and the Dockerfile.
# Usage: vendor_assets.sh NODE_MODULES VENDOR_DIR
set -eu
modules=$1
vendor=$2
rm -rf "$vendor/bootstrap" "$vendor/nhsuk-frontend"
mkdir -p "$vendor/bootstrap" "$vendor/nhsuk-frontend"
cp -r "$modules/bootstrap/dist/css" "$modules/bootstrap/dist/js" "$vendor/bootstrap/"
cp -r "$modules/nhsuk-frontend/dist/nhsuk/assets" "$modules/nhsuk-frontend/dist/nhsuk/nhsuk-frontend.min.js" \
    "$vendor/nhsuk-frontend/"
sed -e 's/@font-face{[^}]*}//g' -e 's|url(/assets/|url(assets/|g' -e 's|/\*# sourceMappingURL=[^*]*\*/||' \
    "$modules/nhsuk-frontend/dist/nhsuk/nhsuk-frontend.min.css" > "$vendor/nhsuk-frontend/nhsuk-frontend.min.css"
sed -i -e 's|//# sourceMappingURL=.*$||' "$vendor/nhsuk-frontend/nhsuk-frontend.min.js"
