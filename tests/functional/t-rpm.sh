#!/bin/bash
# The RPM spec builds with rpmbuild (Debian's rpm tools) and installs
# exactly the plugin files: binaries, one symlink per implemented method.
. "$(dirname "$0")/lib.sh"

if ! command -v rpmbuild >/dev/null; then
	skip "rpmbuild not installed (Debian package rpm)"; finish; exit
fi
ver=$(sed -n 's/^Version: *//p' "$SRCDIR/packaging/rpm/xapi-storage-ng.spec")
top=$T/rpm
mkdir -p "$top/SOURCES"
# the source tarball, as a release would make it: tracked and new files,
# without build output
(cd "$SRCDIR" && tar --exclude-vcs --exclude='./build*' \
	--transform "s,^\.,xapi-storage-ng-$ver," -czf "$top/SOURCES/xapi-storage-ng-$ver.tar.gz" .)
dp=1; [ -s "$SRCDIR/src/datapath-plugin/methods.list" ] || dp=0
# --nodeps: the BuildRequires name Fedora/CentOS packages, not Debian's
rpmbuild -bb --nodeps --define "_topdir $top" --define "with_datapath $dp" \
	"$SRCDIR/packaging/rpm/xapi-storage-ng.spec" > "$T/rpmbuild.log" 2>&1
check "rpmbuild -bb succeeds" [ $? = 0 ] || tail -20 "$T/rpmbuild.log"
rpm=$(ls "$top"/RPMS/*/xapi-storage-ng-"$ver"-*.rpm 2>/dev/null | head -1)
check "an RPM was produced" [ -n "$rpm" ]
[ -n "$rpm" ] || { finish; exit; }
files=$(rpm -qlp "$rpm" 2>/dev/null)
for p in ext4-ng xfs-ng; do
	d=/usr/libexec/xapi-storage-script/volume/org.xen.xapi.storage.$p
	check "$p: binary packaged" grep -qx "/usr/libexec/xapi-storage-ng/$p" <<<"$files"
	got=$(grep "^$d/" <<<"$files" | sed "s|^$d/||" | sort)
	check "$p: one file per implemented method, nothing else" \
		[ "$got" = "$(sort "$SRCDIR/src/volume-plugin/methods.list")" ]
done
if [ $dp = 1 ]; then
	d=/usr/libexec/xapi-storage-script/datapath/ngdp
	got=$(grep "^$d/" <<<"$files" | sed "s|^$d/||" | sort)
	check "ngdp datapath: one file per implemented method" \
		[ "$got" = "$(sort "$SRCDIR/src/datapath-plugin/methods.list")" ]
fi
check "it conflicts with XCP-ng's Python ext4-ng package" bash -c \
	"rpm -qp --conflicts '$rpm' 2>/dev/null | grep -qx 'xcp-ng-xapi-storage < 1.2.0'"
check "licence and README packaged" bash -c "grep -q LICENSE <<<'$files' && grep -q README.md <<<'$files'"
# symlinks point at the packaged binary, relative to the plugin directory
rpm -qlvp "$rpm" 2>/dev/null | grep ' -> ' | grep ' /usr/libexec/xapi-storage-script/' > "$T/links"
check "method files are symlinks to ../../../xapi-storage-ng/<binary>" \
	bash -c "! grep -v -- '-> \.\./\.\./\.\./xapi-storage-ng/' '$T/links' && [ -s '$T/links' ]"
finish
