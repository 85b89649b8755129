# The interop oracle: AWS's official S3 Encryption Client (Ruby, EncryptionV2) against an S3+KMS endpoint.
#   ruby s3ec.rb get <endpoint> <region> <bucket> <key> <out-file>
#   ruby s3ec.rb put <endpoint> <region> <bucket> <key> <in-file> <kms-key-id>
# Exit 0 on success; on failure prints the client's exception class and message to stderr and exits 3.
require 'aws-sdk-s3'
require 'aws-sdk-kms'

mode, endpoint, region, bucket, key, file, kms_key_id = ARGV
creds = Aws::Credentials.new(ENV.fetch('AWS_ACCESS_KEY_ID', 'testing'), ENV.fetch('AWS_SECRET_ACCESS_KEY', 'testing'))
s3 = Aws::S3::Client.new(endpoint: endpoint, region: region, credentials: creds, force_path_style: true)
# The KMS client must be given explicitly: the encryption client would otherwise build one without the endpoint.
kms = Aws::KMS::Client.new(endpoint: endpoint, region: region, credentials: creds)

begin
  case mode
  when 'get'
    # SES objects use the legacy "kms" wrap, so only the v2_and_legacy profile reads them. Debian's aws-sdk-kms 1.24
    # has no KeyId member on Decrypt, hence "any CMK" (the key is then named by the ciphertext blob itself).
    client = Aws::S3::EncryptionV2::Client.new(
      client: s3, kms_client: kms,
      kms_key_id: :kms_allow_decrypt_with_any_cmk,
      key_wrap_schema: :kms_context, content_encryption_schema: :aes_gcm_no_padding,
      security_profile: :v2_and_legacy
    )
    File.open(file, 'wb') { |f| client.get_object(bucket: bucket, key: key, response_target: f) }
  when 'put'
    client = Aws::S3::EncryptionV2::Client.new(
      client: s3, kms_client: kms, kms_key_id: kms_key_id,
      key_wrap_schema: :kms_context, content_encryption_schema: :aes_gcm_no_padding,
      security_profile: :v2
    )
    File.open(file, 'rb') { |f| client.put_object(bucket: bucket, key: key, body: f) }
  else
    warn "unknown mode #{mode}"
    exit 2
  end
rescue StandardError => e
  warn "#{e.class}: #{e.message}"
  exit 3
end
