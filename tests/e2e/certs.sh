# Test certificates with the openssl CLI: a CA and leaves with a SPIFFE URI SAN. Sourced by
# tests/e2e/lib.sh and by component tests that need only these.

mk_ca() { # DIR NAME
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/O=pillion-e2e/CN=$2" -keyout "$1/$2.key" -out "$1/$2.crt" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

mk_leaf() { # DIR CA NAME SPIFFE_ID [DAYS]
	local d=$1 ca=$2 name=$3 id=$4 days=${5:-1}
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
		-keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null
	printf 'subjectAltName=URI:%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n' "$id" > "$d/$name.ext"
	openssl x509 -req -in "$d/$name.csr" -CA "$d/$ca.crt" -CAkey "$d/$ca.key" -CAcreateserial \
		-days "$days" -extfile "$d/$name.ext" -out "$d/$name.crt" 2>/dev/null
}
